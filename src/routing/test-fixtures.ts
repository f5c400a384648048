/** Sample decisions for the routing tests and benchmark. */
import type { Decision } from '../domain/decision.ts';

/** A valid decision; `over` replaces top-level fields. */
export function sampleDecision(over: Partial<Decision> = {}): Decision {
  return {
    decisionId: 'd-1',
    revision: 1,
    coordinationId: 'c-1',
    portfolioId: 'pf-17',
    strategyId: 's-1',
    accountId: 'acc-1',
    type: 'trade',
    instrument: { symbol: 'AAPL', assetClass: 'equity', venue: 'XNAS', currency: 'USD' },
    side: 'buy',
    quantity: '1500',
    limitPrice: '189.25',
    orderType: 'limit',
    timeInForce: 'day',
    policy: { verdict: 'approved', ruleIds: ['r1'], reasons: [] },
    priority: 7,
    createdAt: '2026-11-27T09:30:00.123Z',
    attributes: { desk: 'eq-us', region: 'us', score: 3, urgent: true },
    ...over,
  };
}
