/** Public surface of the routing core: topic patterns, templates, CEL conditions, filter analysis, matcher, rules. */
export { PatternIndex } from './topic-trie.ts';
export { compileTemplate, templateErrors, type CompiledTemplate } from './template.ts';
export {
  compileCel,
  tryCompileCel,
  celErrorTotal,
  lineColumn,
  MAX_EXPRESSION_LENGTH,
  type CompiledCel,
  type CelContext,
  type CelOutcome,
  type ExpressionFieldError,
} from './cel.ts';
export { analyseFilter, tryAnalyseFilter, filterHolds, type AnalysedFilter } from './filter-analysis.ts';
export { TermIndex, compileTerm, type IndexTerm, type CompiledTerm, type IndexKey } from './term-index.ts';
export {
  SubscriptionMatcher,
  topicTest,
  anyTopicPasses,
  type SubscriptionEntry,
  type ExplainVerdict,
  type TopicTest,
} from './matcher.ts';
export {
  compileRuleSet,
  DEFAULT_ROUTE,
  DEFAULT_KEY,
  MAX_RULES,
  type RuleInput,
  type RuleActions,
  type RuleSetInput,
  type RouteOutcome,
  type RouteError,
  type CompiledRuleSet,
} from './rules.ts';
