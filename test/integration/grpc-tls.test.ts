/**
 * TLS and mTLS on the gRPC listener, with throwaway certificates made by openssl: over TLS a client
 * that trusts the CA publishes and consumes, a plaintext client or one that does not trust the CA is
 * refused; under mTLS a client without a certificate, or with one of another CA, is refused and one
 * with a certificate of the CA is accepted (the typed client, the reconnecting subscriber and
 * `cds tail`). A missing, unreadable or invalid key or certificate stops the start with an error
 * naming the key and the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bearer, connect, GrpcSubscriber, type GrpcTls } from '../../src/client/grpc.ts';
import { runCli } from '../../src/cli/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { CdsError } from '../../src/errors/index.ts';
import type { PublishResponse } from '../../src/transports/grpc/gen/cds/v1/decisions.ts';
import { listenerSecurity } from '../../src/transports/grpc/tls.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { makeTestCerts, type TestCerts } from '../helpers/certs.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { cleanupTempDirs, startServer } from '../helpers/server.ts';

const certs = makeTestCerts();

function publish(address: string, tls: GrpcTls | undefined, i: number): Promise<PublishResponse> {
  const c = connect(address, tls);
  return new Promise<PublishResponse>((resolve, reject) =>
    c.decisions.publish(
      { decisions: [Buffer.from(JSON.stringify(makeDecision(i)))] },
      bearer(ADMIN_KEY),
      { deadline: Date.now() + 5000 },
      (e, r) => {
        c.close();
        if (e) reject(e);
        else resolve(r);
      },
    ),
  );
}

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

/** The CONFIG_INVALID error of a `grpc.tls` configuration. */
function startError(tls: Record<string, unknown>): CdsError {
  try {
    listenerSecurity(loadConfig({ overrides: { grpc: { tls } } }).grpc.tls);
  } catch (e) {
    assert.ok(e instanceof CdsError, String(e));
    assert.equal(e.code, 'CONFIG_INVALID');
    return e;
  }
  throw new Error(`no error for ${JSON.stringify(tls)}`);
}

if ('skipped' in certs) {
  it('gRPC TLS and mTLS', { skip: certs.skipped }, () => {});
} else {
  const c: TestCerts = certs;
  const trusting: GrpcTls = { ca: c.read(c.caCert) };
  const withCert: GrpcTls = { ...trusting, cert: c.read(c.clientCert), key: c.read(c.clientKey) };

  describe('gRPC TLS and mTLS', { timeout: 90_000 }, () => {
    after(() => cleanupTempDirs());

    describe('TLS', () => {
      let t: TestApp;
      let address: string;
      before(async () => {
        t = await startTestApp({ grpc: { port: 0, tls: { certFile: c.serverCert, keyFile: c.serverKey } } });
        address = (await t.app.listen()).grpc;
      });
      after(async () => t?.close());

      it('serves a client that trusts the CA; refuses plaintext and untrusting clients', async () => {
        const ok = await publish(address, trusting, 1);
        assert.equal(ok.results.length, 1);
        // By name too, since the certificate names localhost.
        const port = address.split(':')[1];
        assert.equal((await publish(`localhost:${port}`, trusting, 2)).results.length, 1);

        const plain = await refused(publish(address, undefined, 3));
        assert.equal(plain.code, grpc.status.UNAVAILABLE, plain.message);
        const systemRoots = await refused(publish(address, {}, 4));
        assert.equal(systemRoots.code, grpc.status.UNAVAILABLE, systemRoots.message);
        const wrongName = await refused(publish(address, { ...trusting, serverName: 'other.example' }, 5));
        assert.equal(wrongName.code, grpc.status.UNAVAILABLE, wrongName.message);
        assert.equal((await t.request('GET', '/v1/decisions/dec-000003')).status, 404);
      });
    });

    describe('mTLS', () => {
      let t: TestApp;
      let address: string;
      before(async () => {
        t = await startTestApp({
          grpc: {
            port: 0,
            tls: {
              certFile: c.serverCert,
              keyFile: c.serverKey,
              caFile: c.caCert,
              requireClientCert: true,
            },
          },
        });
        address = (await t.app.listen()).grpc;
      });
      after(async () => t?.close());

      it('accepts a client certificate of the CA and refuses none or another CA’s', async () => {
        const none = await refused(publish(address, trusting, 10));
        assert.equal(none.code, grpc.status.UNAVAILABLE, none.message);
        const rogue = await refused(
          publish(
            address,
            { ...trusting, cert: c.read(c.rogueClientCert), key: c.read(c.rogueClientKey) },
            11,
          ),
        );
        assert.equal(rogue.code, grpc.status.UNAVAILABLE, rogue.message);
        assert.equal((await refused(publish(address, undefined, 12))).code, grpc.status.UNAVAILABLE);
        for (const i of [10, 11, 12])
          assert.equal((await t.request('GET', `/v1/decisions/dec-0000${i}`)).status, 404);

        assert.equal((await publish(address, withCert, 13)).results.length, 1);
      });

      it('the reconnecting subscriber and cds tail consume over mTLS', async () => {
        const name = `grpc-mtls-${process.pid}`;
        const r = await t.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } });
        assert.equal(r.status, 201);
        const pub = await t.request('POST', '/v1/decisions', {
          body: [20, 21, 22, 23].map((i) => makeDecision(i)),
        });
        assert.equal(pub.status, 200);

        const sub = new GrpcSubscriber({ address, token: ADMIN_KEY, subscription: name, tls: withCert });
        const got: string[] = [];
        for await (const e of sub) {
          if (e.type === 'deliveries') got.push(...e.deliveries.map((d) => String(d.decision['decisionId'])));
          if (e.type === 'reconnecting') throw new Error(`refused: ${e.error.message}`);
          if (got.length >= 4) break;
        }
        sub.close();
        assert.deepEqual(got.sort(), ['dec-000020', 'dec-000021', 'dec-000022', 'dec-000023']);

        // cds tail on a second subscription; it acknowledges what it printed.
        const tailed = `grpc-mtls-tail-${process.pid}`;
        assert.equal(
          (
            await t.request('POST', '/v1/subscriptions', {
              body: { name: tailed, topics: ['decisions.>'], start: 'earliest' },
            })
          ).status,
          201,
        );
        const out: string[] = [];
        const err: string[] = [];
        const code = await runCli({
          argv: [
            'tail', tailed, '--grpc', address, '--key', ADMIN_KEY, '--count', '5',
            '--ca', c.caCert, '--cert', c.clientCert, '--cert-key', c.clientKey,
          ], // prettier-ignore
          env: {},
          stdout: (l) => out.push(l),
          stderr: (l) => err.push(l),
        });
        assert.equal(code, 0, err.join('\n'));
        assert.equal(out.length, 5);
        assert.ok(out.every((l) => typeof JSON.parse(l).position === 'string'));
      });
    });

    it('a bad key or certificate stops the start with an error naming it', async () => {
      const dir = join(c.dir, 'bad');
      mkdirSync(dir);
      const garbage = join(dir, 'garbage.pem');
      writeFileSync(garbage, 'not a pem file\n');
      const base = { certFile: c.serverCert, keyFile: c.serverKey };

      let e = startError({ ...base, keyFile: join(dir, 'missing.key') });
      assert.match(e.message, /^grpc\.tls\.keyFile: cannot read .*missing\.key: ENOENT/);
      e = startError({ ...base, certFile: dir });
      assert.match(e.message, /^grpc\.tls\.certFile: cannot read .*: EISDIR/);
      e = startError({ ...base, certFile: garbage });
      assert.match(e.message, /^grpc\.tls\.certFile: .*garbage\.pem holds no PEM certificate/);
      e = startError({ ...base, keyFile: garbage });
      assert.match(e.message, /^grpc\.tls\.keyFile: .*garbage\.pem is not a PEM private key/);
      e = startError({ ...base, keyFile: c.clientKey });
      assert.match(
        e.message,
        /^grpc\.tls\.keyFile: the key in .*client\.key is not the key of the certificate/,
      );
      e = startError({ ...base, requireClientCert: true });
      assert.match(e.message, /^grpc\.tls\.caFile: /);
      e = startError({ ...base, caFile: c.caCert });
      assert.match(e.message, /^grpc\.tls\.caFile: client certificates are checked only with/);
      e = startError({ certFile: c.serverCert });
      assert.match(e.message, /^grpc\.tls\.keyFile: /);
      e = startError({ caFile: c.caCert, requireClientCert: true });
      assert.match(e.message, /needs TLS|need TLS/);
      assert.deepEqual((e.details?.['errors'] as { path: string }[])[0]?.path, 'grpc.tls.caFile');

      // The real process: exit code 2 and the reason on standard error, from the CDS_* variables.
      await assert.rejects(
        startServer({ env: { CDS_GRPC_TLS_CERT_FILE: c.serverCert, CDS_GRPC_TLS_KEY_FILE: garbage } }),
        (err: Error) => {
          assert.match(err.message, /exited with code 2/);
          assert.match(
            err.message,
            /CONFIG_INVALID: grpc\.tls\.keyFile: .*garbage\.pem is not a PEM private key/,
          );
          return true;
        },
      );
    });
  });
}
