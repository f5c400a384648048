/** The gRPC transport's public surface. */
export {
  buildGrpcServer,
  PROTO_DIR,
  PROTO_FILES,
  SERVICES,
  type GrpcServer,
  type GrpcServerOptions,
} from './server.ts';
export { CODE_TRAILER, DETAILS_TRAILER } from './errors.ts';
