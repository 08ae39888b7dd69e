/**
 * Enrols and revokes gpu-node tokens in the coordinator's tokens file
 * (NIGHTSHIFT_NODE_TOKENS_FILE, or --file). Only the hash is written; the
 * token is printed once, on stdout, for the node's NIGHTSHIFT_NODE_TOKEN.
 *   tokens.ts add NAME      new random token for NAME
 *   tokens.ts revoke NAME   remove NAME's tokens (a connected node is dropped within a second)
 *   tokens.ts list          names and fingerprints
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fingerprint, parseTokensFile, sha256 } from './node-tokens.js';

const args = process.argv.slice(2);
const fileFlag = args.indexOf('--file');
const file = fileFlag >= 0 ? args.splice(fileFlag, 2)[1] : process.env.NIGHTSHIFT_NODE_TOKENS_FILE;
const [command, name] = args;
const usage = 'usage: tokens.ts add NAME | revoke NAME | list  [--file FILE] (default: $NIGHTSHIFT_NODE_TOKENS_FILE)';
if (!file || !command) {
  console.error(usage);
  process.exit(2);
}
const text = existsSync(file) ? readFileSync(file, 'utf8') : '# gpu-node tokens: NAME sha256:HEX (hashes only; see README "Node enrolment")\n';
// Written whole and renamed into place, so the coordinator never reads half a file.
const save = (content: string) => {
  writeFileSync(`${file}.tmp`, content, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
};

if (command === 'add' && name && /^[A-Za-z0-9._-]{1,64}$/.test(name)) {
  const token = `nst_${randomBytes(32).toString('base64url')}`;
  save(`${text.replace(/\n?$/, '\n')}${name} sha256:${sha256(token).toString('hex')}\n`);
  console.error(`enrolled ${name} in ${file}; give this token to the node as NIGHTSHIFT_NODE_TOKEN (it is not stored anywhere):`);
  console.log(token);
} else if (command === 'revoke' && name) {
  const lines = text.split('\n');
  const kept = lines.filter((l) => l.trim().split(/\s+/)[0] !== name || l.trim().startsWith('#'));
  if (kept.length === lines.length) {
    console.error(`no token named ${name} in ${file}`);
    process.exit(1);
  }
  save(kept.join('\n'));
  console.error(`revoked ${name} (${lines.length - kept.length} token(s))`);
} else if (command === 'list') {
  const { entries, errors } = parseTokensFile(text);
  for (const e of entries) console.log(`${e.name}\t${fingerprint(e.hash)}`);
  for (const e of errors) console.error(e);
} else {
  console.error(usage);
  process.exit(2);
}
