/**
 * Which node may connect, and under which id: a stream must present an
 * enrolled token (node-tokens.ts), and a node id belongs to the token that
 * first enrolled it. Logs carry a fingerprint of a token's hash, never the
 * token.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@nightshift/common';
import type { NodeEngine } from './store-engine/engine.js';
import type { NodeTokens } from './node-tokens.js';
import type { NodeStream } from './node-messages.js';

/** The enrolled token a stream connected with: its name, and its fingerprint when tokens are configured. */
export interface StreamToken {
  name: string;
  fingerprint?: string | undefined;
}

export interface EnrolmentDeps {
  nodes: Pick<NodeEngine, 'nodeTokenBinding' | 'bindNodeToken'>;
  tokens: NodeTokens;
  log: Logger;
  /** A stream or a node id refused, by reason (metrics). */
  refused(reason: string): void;
}

export class NodeEnrolment {
  private readonly tokenOf = new WeakMap<NodeStream, StreamToken>();
  private revision: number;

  constructor(private readonly deps: EnrolmentDeps) {
    this.revision = deps.tokens.revision;
  }

  /** Checks a new stream's token; a refused stream is told why (and false returned). */
  admit(call: NodeStream): boolean {
    const auth = this.deps.tokens.check(String(call.metadata.get('authorization')[0] ?? ''));
    if (!auth.ok) {
      // The reason and a fingerprint of the token's hash, never the token itself.
      const claimed = String(call.metadata.get('x-nightshift-node')[0] ?? '') || undefined;
      this.deps.log.warn({ peer: call.getPeer(), node: claimed, reason: auth.reason, fingerprint: auth.fingerprint }, 'node refused: bad node token');
      this.deps.refused(auth.reason);
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `node token refused (${auth.reason}): enrol this node with a token the coordinator knows (README "Node enrolment")` });
      return false;
    }
    this.tokenOf.set(call, { name: auth.name, fingerprint: auth.fingerprint });
    return true;
  }

  /** The token an admitted stream connected with. */
  token(call: NodeStream): StreamToken {
    return this.tokenOf.get(call) ?? { name: 'open' };
  }

  /**
   * A node id belongs to the token that first enrolled it (when node tokens
   * are configured): another token claiming it is refused, unless the first
   * was revoked since. Nothing of the claimant is recorded.
   */
  async mayUseNodeId(call: NodeStream, nodeId: string): Promise<boolean> {
    const { nodes, tokens, log } = this.deps;
    const fingerprint = this.token(call).fingerprint;
    if (!fingerprint) return true;
    const bound = await nodes.nodeTokenBinding(nodeId);
    if (bound === fingerprint) return true;
    if (bound && tokens.hasFingerprint(bound)) {
      log.warn({ peer: call.getPeer(), node: nodeId, fingerprint, boundTo: bound }, 'node refused: its id belongs to another token');
      this.deps.refused('node id bound to another token');
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `node id ${nodeId} is enrolled with another token; choose another NIGHTSHIFT_NODE_ID` });
      return false;
    }
    if (bound) log.warn({ node: nodeId, fingerprint, was: bound }, 'node id re-enrolled: the token it was bound to is revoked');
    await nodes.bindNodeToken(nodeId, fingerprint);
    return true;
  }

  /** Re-reads the tokens; true when the set changed since the last call (then live sessions are worth re-checking). */
  tokensChanged(): boolean {
    this.deps.tokens.refresh();
    if (this.deps.tokens.revision === this.revision) return false;
    this.revision = this.deps.tokens.revision;
    return true;
  }

  /** Is the token known by this name still enrolled? */
  enrolled(tokenName: string): boolean {
    return this.deps.tokens.has(tokenName);
  }
}
