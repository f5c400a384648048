/**
 * A seek to positions names the epoch they belong to (ADR 0014, 0019): the log's epoch is taken, any
 * other (a position handed out before a restore) is 409 EPOCH_MISMATCH over REST and
 * FAILED_PRECONDITION for a gRPC Session resume, and the read position stays where it was; a
 * malformed target is 400 naming the field under /to. The same after a real restore is checked by
 * backup-under-load.test.ts; here the foreign epoch is one the log never had.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GrpcSubscriber, type GrpcSubscriberEvent } from '../../src/client/grpc.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';

const OTHER_EPOCH = '0123456789abcdef';

async function nextOf(
  it: AsyncIterator<GrpcSubscriberEvent>,
  types: readonly GrpcSubscriberEvent['type'][],
): Promise<GrpcSubscriberEvent> {
  for (;;) {
    const r = await it.next();
    if (r.done === true) throw new Error(`the stream ended before ${types.join(' or ')}`);
    if (types.includes(r.value.type)) return r.value;
  }
}

describe('seek with an epoch', () => {
  let t: TestApp;
  let epoch: string;
  let grpcAddress: string;
  const name = 'seek-epoch';

  before(async () => {
    t = await startTestApp();
    grpcAddress = (await t.app.listen()).grpc;
    epoch = t.app.ctx.log.epoch;
    const created = await t.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], start: 'latest' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(() => t.close());

  const seek = (body: unknown) => t.request('POST', `/v1/subscriptions/${name}/seek`, { body });

  it('positions of the log epoch are taken, with or without the epoch', async () => {
    for (const body of [
      { to: { position: '0:0', epoch } },
      { to: { positions: ['0:0', '1:0'], epoch } },
      { to: { position: '0:0' } },
      { position: '0:0', epoch },
    ]) {
      const r = await seek(body);
      assert.equal(r.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    }
  });

  it('positions of another epoch are 409 EPOCH_MISMATCH naming both epochs, and nothing moves', async () => {
    for (const body of [
      { to: { position: '0:0', epoch: OTHER_EPOCH } },
      { to: { positions: ['0:0'], epoch: OTHER_EPOCH } },
      { position: '0:0', epoch: OTHER_EPOCH },
    ]) {
      const r = await seek(body);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'EPOCH_MISMATCH');
      assert.deepEqual(r.body.error.details, { epoch: OTHER_EPOCH, current: epoch });
    }
    const audit = await t.request('GET', '/v1/audit?limit=1000');
    const seeks = (audit.body.records as { action: string; details?: { to?: { epoch?: string } } }[]).filter(
      (a) => a.action === 'subscription.seek',
    );
    assert.equal(seeks.length, 4, 'the four seeks of the log epoch are audited');
    assert.ok(
      seeks.every((a) => a.details?.to?.epoch !== OTHER_EPOCH),
      'a refused seek is not audited as done',
    );
  });

  it('a malformed target is 400 VALIDATION_FAILED naming the field under /to', async () => {
    const cases: [unknown, string, string][] = [
      [{ to: { position: '0:0', epoch: 'not hex' } }, '/to/epoch', 'pattern'],
      [{ to: { position: 'zero' } }, '/to/position', 'invalid_position'],
      [{ to: { epoch } }, '/to', 'type'],
      [{ to: 'earliest', from: 'latest' }, '/from', 'unknown_field'],
      [{ position: '0:0', epoch: 7 }, '/epoch', 'pattern'],
    ];
    for (const [body, path, code] of cases) {
      const r = await seek(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      assert.ok(
        r.body.error.details.errors.some(
          (e: { path: string; code: string }) => e.path === path && e.code === code,
        ),
        `${JSON.stringify(body)}: ${JSON.stringify(r.body.error.details.errors)}`,
      );
    }
  });

  it('a gRPC Session resume to positions of another epoch is refused with FAILED_PRECONDITION; of the log epoch it subscribes', async () => {
    const refused = new GrpcSubscriber({
      address: grpcAddress,
      token: ADMIN_KEY,
      subscription: name,
      resume: { positions: ['0:0'], epoch: OTHER_EPOCH },
    });
    try {
      const e = await nextOf(refused[Symbol.asyncIterator](), ['error', 'subscribed']);
      assert.ok(e.type === 'error' && e.error.code === 'EPOCH_MISMATCH', JSON.stringify(e));
      assert.equal(e.type === 'error' && e.error.grpcCode, 9);
    } finally {
      refused.close();
    }
    const taken = new GrpcSubscriber({
      address: grpcAddress,
      token: ADMIN_KEY,
      subscription: name,
      resume: { positions: ['0:0'], epoch },
    });
    try {
      const e = await nextOf(taken[Symbol.asyncIterator](), ['error', 'subscribed']);
      assert.ok(e.type === 'subscribed' && e.epoch === epoch, JSON.stringify(e));
    } finally {
      taken.close();
    }
  });
});
