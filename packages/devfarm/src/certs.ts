/**
 * Throwaway certificates for TLS tests: a CA, a server certificate for the
 * given names and addresses, and a client certificate (mTLS), made with the
 * `openssl` CLI (EC P-256, valid one day). `opensslAvailable()` lets a test
 * skip where the CLI is missing.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing here: a client trusting it must fail. */
  otherCa: string;
}

export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function makeTestCerts(dir: string, serverNames: string[] = ['localhost', '127.0.0.1']): TestCerts {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) ssl('req', '-x509', ...ec, '-keyout', p(`${ca}.key`), '-out', p(`${ca}.crt`), '-days', '1', '-subj', `/CN=nightshift-test-${ca}`);
  const sign = (name: string, cn: string, ext: string, serial: string) => {
    writeFileSync(p(`${name}.ext`), ext);
    ssl('req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-set_serial', serial, '-days', '1', '-out', p(`${name}.crt`), '-extfile', p(`${name}.ext`));
  };
  const san = serverNames.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  sign('server', serverNames[0] ?? 'localhost', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`, '2');
  sign('client', 'gpu-node', 'extendedKeyUsage=clientAuth\n', '3');
  return { ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'), otherCa: p('other-ca.crt') };
}
