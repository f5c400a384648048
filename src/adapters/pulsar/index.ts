export { PulsarLog, TRIM_SUBSCRIPTION, DEFAULT_RETENTION } from './pulsar-log.ts';
export type { PulsarLogOptions } from './pulsar-log.ts';
export { WsPulsarClient } from './ws-client.ts';
export { PulsarError, topicName } from './client.ts';
export type {
  PulsarClient,
  PulsarAdmin,
  PulsarProducer,
  PulsarReader,
  ReaderEvent,
  StartAt,
  IncomingMessage,
  OutgoingMessage,
  ProducerOptions,
  RetentionPolicy,
  MessageId,
} from './client.ts';
export { partitionOfKey, pulsarKeyHash } from './hash.ts';
export { decodeMessageId, encodeMessageId, compareMessageIds } from './message-id.ts';
