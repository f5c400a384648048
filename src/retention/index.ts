/** Retention policies and their application to the log (DESIGN 5; ADR 0017). */
export { RetentionService, type RetentionDeps, type RunReport, type PartitionRun } from './service.ts';
export { RetentionMetrics } from './metrics.ts';
export { PolicySet, parsePolicy, compareSpecificity, type CompiledPolicy } from './policy.ts';
