/**
 * The gRPC listener's credentials (DESIGN 8; ADR 0012): plaintext, TLS (`grpc.tls.certFile` +
 * `keyFile`) or mTLS (`caFile` + `requireClientCert`). Every file is read and checked when the server
 * is built, so that a missing, unreadable or invalid key or certificate stops the start with an error
 * naming the key and the file, rather than failing each client's handshake later.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ServerCredentials } from '@grpc/grpc-js';
import type { Config } from '../../config/index.ts';
import { CdsError } from '../../errors/index.ts';

/** What the listener serves: the credentials and a summary for the logs. */
export interface ListenerSecurity {
  readonly credentials: ServerCredentials;
  readonly mode: 'plaintext' | 'tls' | 'mtls';
}

function invalid(path: string, code: string, message: string, cause?: unknown): CdsError {
  return new CdsError('CONFIG_INVALID', `${path}: ${message}`, {
    details: { errors: [{ path, code, message }] },
    ...(cause === undefined ? {} : { cause }),
  });
}

function readPem(path: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw invalid(path, 'unreadable', `cannot read ${file}: ${(e as Error).message}`, e);
  }
}

/** Every certificate of a PEM bundle; refuses a file with none or with a broken one. */
function certificates(path: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem
    .toString('latin1')
    .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (blocks === null) throw invalid(path, 'invalid', `${file} holds no PEM certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw invalid(
        path,
        'invalid',
        `${file} holds a certificate that cannot be parsed: ${(e as Error).message}`,
        e,
      );
    }
  });
}

function checkDates(path: string, file: string, c: X509Certificate, now: number): void {
  if (Date.parse(c.validTo) < now)
    throw invalid(
      path,
      'expired',
      `the certificate in ${file} (${c.subject.replaceAll('\n', ', ')}) expired on ${c.validTo}`,
    );
  if (Date.parse(c.validFrom) > now)
    throw invalid(path, 'not_yet_valid', `the certificate in ${file} is not valid before ${c.validFrom}`);
}

/** The listener's credentials from `grpc.tls`, every file checked; CONFIG_INVALID names what is wrong. */
export function listenerSecurity(config: Config['grpc']['tls'], now = Date.now()): ListenerSecurity {
  const { certFile, keyFile, caFile, requireClientCert } = config;
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined || requireClientCert)
      throw invalid(
        caFile !== undefined ? 'grpc.tls.caFile' : 'grpc.tls.requireClientCert',
        'requires',
        'client certificates need TLS: set grpc.tls.certFile and grpc.tls.keyFile too',
      );
    return { credentials: ServerCredentials.createInsecure(), mode: 'plaintext' };
  }
  if (certFile === undefined || keyFile === undefined)
    throw invalid(
      certFile === undefined ? 'grpc.tls.certFile' : 'grpc.tls.keyFile',
      'required',
      'grpc.tls.certFile and grpc.tls.keyFile are set together',
    );
  if (requireClientCert && caFile === undefined)
    throw invalid(
      'grpc.tls.caFile',
      'required',
      'grpc.tls.requireClientCert needs the CA bundle that client certificates chain to',
    );
  if (!requireClientCert && caFile !== undefined)
    throw invalid(
      'grpc.tls.caFile',
      'unused',
      'client certificates are checked only with grpc.tls.requireClientCert=true',
    );

  const certPem = readPem('grpc.tls.certFile', certFile);
  const keyPem = readPem('grpc.tls.keyFile', keyFile);
  const chain = certificates('grpc.tls.certFile', certFile, certPem);
  const leaf = chain[0] as X509Certificate;
  checkDates('grpc.tls.certFile', certFile, leaf, now);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw invalid(
      'grpc.tls.keyFile',
      'invalid',
      `${keyFile} is not a PEM private key (${(e as Error).message})`,
      e,
    );
  }
  if (!leaf.checkPrivateKey(key))
    throw invalid(
      'grpc.tls.keyFile',
      'mismatch',
      `the key in ${keyFile} is not the key of the certificate in ${certFile}`,
    );
  let caPem: Buffer | null = null;
  if (caFile !== undefined) {
    caPem = readPem('grpc.tls.caFile', caFile);
    for (const c of certificates('grpc.tls.caFile', caFile, caPem))
      checkDates('grpc.tls.caFile', caFile, c, now);
  }
  try {
    createSecureContext({ cert: certPem, key: keyPem, ...(caPem === null ? {} : { ca: caPem }) });
  } catch (e) {
    throw invalid(
      'grpc.tls.certFile',
      'invalid',
      `TLS refuses ${certFile} with ${keyFile}: ${(e as Error).message}`,
      e,
    );
  }
  return {
    credentials: ServerCredentials.createSsl(
      caPem,
      [{ private_key: keyPem, cert_chain: certPem }],
      requireClientCert,
    ),
    mode: requireClientCert ? 'mtls' : 'tls',
  };
}
