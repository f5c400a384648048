/** Public surface of the webhook transport (ADR 0010). */
export { WebhookService, type WebhookView } from './service.ts';
export { registerWebhookRoutes } from './routes.ts';
export { generateSecret, secretKey, sign } from './signing.ts';
