/**
 * Tests only: a stand-in `nvidia-smi` (a shell script in a temp folder put
 * first on the PATH) answering the three questions the node asks: compute
 * apps (idleOnly), the GPUs (name, driver) and a power.draw loop. Any other
 * question exits 2 with the arguments on stderr, so a test sees it.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NvidiaSmiStub {
  /** process.env with the stub first on the PATH. */
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup: () => void;
}

export interface StubAnswers {
  /** Lines for --query-compute-apps ("1234, /usr/bin/game"). */
  apps?: string[];
  /** The GPUs for --query-gpu=index,name,driver_version. */
  gpus?: { name: string; driver: string }[];
  /**
   * power.draw readings, one line per GPU per loop turn: each entry is one
   * turn (a number for one GPU, or one per GPU), repeated from the start
   * after the last. A string is printed as is ("[N/A]").
   */
  watts?: (number | string | (number | string)[])[];
  /** Seconds between loop turns (the stub ignores -lms). */
  periodS?: number;
  /** The power loop exits (status 1) after this many passes over `watts`, as a crashing nvidia-smi would. */
  exitAfter?: number;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function stubNvidiaSmi(answers: StubAnswers): NvidiaSmiStub {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-smi-'));
  const echo = (lines: string[]) => lines.map((l) => `echo ${shellQuote(l)}`).join('; ');
  const turns = (answers.watts ?? []).map((t) => echo((Array.isArray(t) ? t : [t]).map(String)));
  const pass = turns.map((t) => `${t}; sleep ${answers.periodS ?? 0.05}`).join('; ');
  const loop = !turns.length ? 'exit 3' : answers.exitAfter === undefined ? `while :; do ${pass}; done` : `for _ in $(seq ${answers.exitAfter}); do ${pass}; done; exit 1`;
  const script = [
    '#!/bin/sh',
    'case "$*" in',
    `  *--query-compute-apps=pid,process_name*--format=csv,noheader*) ${echo(answers.apps ?? []) || ':'} ;;`,
    `  *--query-gpu=index,name,driver_version*--format=csv,noheader,nounits*) ${echo((answers.gpus ?? []).map((g, i) => `${i}, ${g.name}, ${g.driver}`)) || 'exit 6'} ;;`,
    `  *--query-gpu=power.draw*--format=csv,noheader,nounits*-lms*) ${loop} ;;`,
    '  *) echo "unexpected: $*" >&2; exit 2 ;;',
    'esac',
  ].join('\n');
  writeFileSync(join(dir, 'nvidia-smi'), `${script}\n`);
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  return { env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` }, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
