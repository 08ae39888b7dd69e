/**
 * Where a node looks for its coordinator: NIGHTSHIFT_COORDINATOR as one or
 * more `host:port` entries, comma-separated (replicas, or a standby that takes
 * over the same database). A host name is looked up again (every A/AAAA
 * record) each time the rotation comes back round to it, so a DNS name with
 * several records counts as several replicas and follows changes to them.
 * The connection (connection.ts) asks for the next address at every
 * (re)connect: round robin, paced by its own backoff.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '@nightshift/common';

/** More entries than this is a configuration mistake, not a farm. */
export const MAX_COORDINATOR_ADDRESSES = 16;
const MAX_SETTING_CHARS = 4_096;
/** Records kept per host name: a name answering with hundreds is capped, not dialled in full. */
const MAX_RECORDS_PER_NAME = 16;
// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** One configured entry, as written. */
export interface CoordinatorEntry {
  host: string;
  port: number;
  /** True for an IP literal (dialled as is); false for a name (looked up). */
  literal: boolean;
  text: string;
}

/** One address to dial now. */
export interface CoordinatorTarget {
  /** gRPC target: `ip:port`, `[ipv6]:port` or a literal entry as written. */
  address: string;
  /** The configured entry it came from (a name's records share it). */
  entry: string;
  /** The host name, when the address came from looking it up (TLS checks the certificate against it). */
  serverName?: string;
}

export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

/** Parses NIGHTSHIFT_COORDINATOR; throws an error naming the bad entry. */
export function parseCoordinatorAddresses(value: string): CoordinatorEntry[] {
  if (value.length > MAX_SETTING_CHARS) fail(`longer than ${MAX_SETTING_CHARS} characters`);
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length > MAX_COORDINATOR_ADDRESSES) fail(`${parts.length} addresses, at most ${MAX_COORDINATOR_ADDRESSES}`);
  const entries: CoordinatorEntry[] = [];
  for (const text of parts) {
    if (!text) fail(value.trim() ? `an empty entry in "${value}"` : 'empty');
    const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
    if (!m) fail(`"${text}" is not host:port (an IPv6 address goes in brackets: [::1]:7070)`);
    const host = m[1]!;
    const portText = m[2]!;
    const port = Number(portText);
    if (port < 1 || port > 65_535) fail(`"${text}": port ${portText} is not 1-65535`);
    const bracketed = text.startsWith('[');
    const ip = isIP(host);
    if (bracketed && ip !== 6) fail(`"${text}": only an IPv6 address goes in brackets`);
    if (!ip && !HOST_NAME.test(host)) fail(`"${text}": "${host}" is not a host name or IP address`);
    if (entries.some((e) => e.host.toLowerCase() === host.toLowerCase() && e.port === port)) fail(`"${text}" is listed twice`);
    entries.push({ host, port, literal: ip !== 0, text });
  }
  return entries;
}

function fail(why: string): never {
  throw new Error(`NIGHTSHIFT_COORDINATOR: ${why} (expected host:port, comma-separated for several coordinators, e.g. "coord-a:7070,coord-b:7070")`);
}

/** `host:port` for gRPC, bracketing IPv6. */
function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

const systemLookup: Lookup = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Round robin over the entries, names expanded to their records. A round is
 * built when the previous one is used up, so each name is looked up once per
 * round; a name that does not resolve is logged and left out of that round.
 */
export class CoordinatorAddresses {
  private round: CoordinatorTarget[] = [];
  private readonly lookup: Lookup;

  constructor(
    readonly entries: readonly CoordinatorEntry[],
    private readonly opts: { log: Logger; lookup?: Lookup | undefined },
  ) {
    if (entries.length === 0) throw new Error('NIGHTSHIFT_COORDINATOR: no address');
    this.lookup = opts.lookup ?? systemLookup;
  }

  /** The address to dial now; undefined when no entry resolved this round (the caller backs off and asks again). */
  async next(): Promise<CoordinatorTarget | undefined> {
    if (this.round.length === 0) this.round = await this.expand();
    return this.round.shift();
  }

  private async expand(): Promise<CoordinatorTarget[]> {
    const perEntry = await Promise.all(
      this.entries.map(async (e): Promise<CoordinatorTarget[]> => {
        if (e.literal) return [{ address: joinHostPort(e.host, e.port), entry: e.text }];
        try {
          const records = await this.lookup(e.host);
          const addresses = [...new Set(records.map((r) => r.address))].slice(0, MAX_RECORDS_PER_NAME);
          if (addresses.length === 0) throw new Error('no A/AAAA records');
          return addresses.map((a) => ({ address: joinHostPort(a, e.port), entry: e.text, serverName: e.host }));
        } catch (err) {
          this.opts.log.warn({ entry: e.text, err: String(err) }, 'coordinator address did not resolve, skipped this round');
          return [];
        }
      }),
    );
    return perEntry.flat();
  }
}
