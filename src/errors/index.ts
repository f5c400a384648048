export { ERROR_CODES, GrpcStatus, type ErrorCode, type ErrorSpec } from './codes.ts';
export { CdsError, validationError, isCdsError, type FieldError } from './cds-error.ts';
