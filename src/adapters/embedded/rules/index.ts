/** The embedded RuleStore (ADR 0013). */
export { LmdbRuleStore } from './lmdb-rule-store.ts';
