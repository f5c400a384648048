/** Retention policies and their application to the log (DESIGN 5; ADR 0017). */
export { RetentionService, type RetentionDeps, type RunReport } from './service.ts';
export type { PartitionRun } from './apply.ts';
export { RetentionMetrics } from './metrics.ts';
export { PolicySet, parsePolicy, compareSpecificity, type CompiledPolicy } from './policy.ts';
