/**
 * The decision schema (DESIGN 3), defined once with TypeBox: it gives the TypeScript types, the JSON
 * Schema published at /v1/schemas/decision.json and the OpenAPI components.
 *
 * Unknown fields are refused (`unknown_field`) everywhere except inside `attributes`, which is the
 * free-form place for them; this keeps typos such as `limitprice` from being stored silently.
 */
import { Type, type Static, type TLiteral, type TUnion } from '@sinclair/typebox';

/** Identifier usable as one token of a topic (it may appear in the default topic). */
const TopicToken = (description: string) =>
  Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$', description });

/** An identifier assigned by a producer. */
const Id = (description: string) =>
  Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$', description });

/** A positive decimal string, never a binary float. */
export const PositiveDecimal = Type.String({
  pattern: '^(0|[1-9][0-9]{0,17})(\\.[0-9]{1,12})?$',
  maxLength: 32,
  description: 'Decimal string (for example "1500" or "0.25"); binary floats are refused.',
});

/** A signed decimal string (prices may be negative for some instruments). */
export const SignedDecimal = Type.String({
  pattern: '^-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,12})?$',
  maxLength: 33,
  description: 'Signed decimal string, for example "189.25".',
});

/** RFC 3339 timestamp with a time zone. */
export const Timestamp = Type.String({
  format: 'date-time',
  maxLength: 40,
  description: 'RFC 3339 date-time with a zone, for example 2026-11-27T09:30:00.123Z.',
});

/** Decision types. An amendment is a higher revision of any type; `cancel` withdraws the decision. */
export const DecisionTypes = [
  'trade',
  'rebalance',
  'hedge',
  'cancel',
  'halt',
  'resume',
  'liquidate',
] as const;
/** Asset classes; the value is a token of the default topic. */
export const AssetClasses = [
  'equity',
  'etf',
  'option',
  'future',
  'fx',
  'fixed_income',
  'crypto',
  'commodity',
  'swap',
] as const;
const Sides = ['buy', 'sell', 'sell_short', 'buy_to_cover'] as const;
const OrderTypes = ['market', 'limit', 'stop', 'stop_limit'] as const;
const TimesInForce = ['day', 'gtc', 'ioc', 'fok', 'gtd', 'opg', 'cls'] as const;
/** Policy verdicts from the Policy Enforcement service. */
export const Verdicts = ['approved', 'rejected', 'conditional'] as const;

const literalUnion = <T extends string>(values: readonly T[], description: string) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description },
  ) as TUnion<TLiteral<T>[]>;

/** The instrument a decision is about. */
export const Instrument = Type.Object(
  {
    symbol: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._/:-]*$' }),
    assetClass: literalUnion(AssetClasses, 'Asset class; lower case.'),
    venue: Type.Optional(
      Type.String({ pattern: '^[A-Z0-9]{2,12}$', description: 'Venue (MIC), upper case.' }),
    ),
    currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' }),
  },
  { additionalProperties: false },
);

/** The policy outcome attached by Policy Enforcement. */
export const Policy = Type.Object(
  {
    verdict: literalUnion(Verdicts, 'approved | rejected | conditional'),
    ruleIds: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64 }),
    reasons: Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 64 }),
    conditions: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 64 })),
  },
  { additionalProperties: false },
);

/** W3C trace context carried from the producer to every subscriber. */
export const TraceContext = Type.Object(
  {
    traceparent: Type.String({ pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' }),
    tracestate: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);

/** A coordinated trading decision as producers publish it. */
export const DecisionSchema = Type.Object(
  {
    decisionId: Id('Producer-assigned unique id; with revision, the idempotency key.'),
    revision: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Amendments raise it.' }),
    coordinationId: Id('The coordination run that produced the decision.'),
    portfolioId: TopicToken('Portfolio; the default ordering key.'),
    strategyId: Id('Strategy that asked for it.'),
    accountId: Id('Account it trades in.'),
    type: literalUnion(DecisionTypes, 'Kind of decision.'),
    instrument: Instrument,
    side: Type.Optional(literalUnion(Sides, 'Side; required for trade and hedge.')),
    quantity: Type.Optional(PositiveDecimal),
    limitPrice: Type.Optional(SignedDecimal),
    orderType: Type.Optional(literalUnion(OrderTypes, 'Order type; limit and stop_limit need limitPrice.')),
    timeInForce: Type.Optional(literalUnion(TimesInForce, 'Time in force.')),
    policy: Policy,
    priority: Type.Integer({ minimum: 0, maximum: 9, description: '0-9, 9 the most urgent.' }),
    expiresAt: Type.Optional(Timestamp),
    createdAt: Timestamp,
    trace: Type.Optional(TraceContext),
    attributes: Type.Optional(
      Type.Record(
        Type.String({ maxLength: 64 }),
        Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]),
        { maxProperties: 64 },
      ),
    ),
  },
  { additionalProperties: false, $id: 'Decision' },
);

/** A decision as producers publish it. */
export type Decision = Static<typeof DecisionSchema>;

/** Fields that identify a decision and may never change across its revisions. */
export const IDENTITY_FIELDS = ['portfolioId', 'strategyId', 'accountId', 'instrument'] as const;
