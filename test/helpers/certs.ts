/**
 * Throwaway certificates for TLS tests, made with the `openssl` command: a CA, a server certificate
 * for 127.0.0.1 and localhost, a client certificate, and a second CA with a client certificate of its
 * own (which a server trusting only the first must refuse). Without openssl the caller gets the
 * reason to skip, except under CI, where it is a failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from './server.ts';

/** File names of one set of certificates (all PEM). */
export interface TestCerts {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Signed by another CA. */
  readonly rogueClientCert: string;
  readonly rogueClientKey: string;
  /** A file's contents. */
  read(file: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a fresh set in a temporary directory, or says why it cannot (never under CI: it throws). */
export function makeTestCerts(): TestCerts | { skipped: string } {
  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    const why = `the openssl command is not available (${probe.error?.message ?? probe.stderr})`;
    if (process.env['CI'] !== undefined && process.env['CI'] !== '')
      throw new Error(`required in CI: ${why}`);
    return { skipped: why };
  }
  const dir = makeTempDir('cds-certs-');
  const key = (name: string) =>
    openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name]);
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    openssl(dir, [
      'req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]); // prettier-ignore
  };
  const leaf = (name: string, caName: string, cn: string, ext: string) => {
    key(`${name}.key`);
    openssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, [
      'x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`,
      '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`,
    ]); // prettier-ignore
  };
  ca('ca', 'cds test CA');
  leaf(
    'server',
    'ca',
    'localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  leaf('client', 'ca', 'cds test client', 'extendedKeyUsage=clientAuth\n');
  ca('rogue-ca', 'another CA');
  leaf('rogue-client', 'rogue-ca', 'rogue client', 'extendedKeyUsage=clientAuth\n');
  const f = (n: string) => join(dir, n);
  return {
    dir,
    caCert: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    rogueClientCert: f('rogue-client.pem'),
    rogueClientKey: f('rogue-client.key'),
    read: (file) => readFileSync(file),
  };
}
