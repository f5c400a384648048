/** Cluster mode (DESIGN 6; ADR 0015): subscriptions placed on instances under fenced leases. */
export { ClusterCoordinator, newMemberId, type CoordinatorOptions } from './coordinator.ts';
export { RetentionPin, slowestCursors, type PinTarget } from './retention-pin.ts';
