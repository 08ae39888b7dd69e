// MT19937, exactly as torch's CPU generator runs it.
// Source: pytorch aten/src/ATen/core/MT19937RNGEngine.h (init_with_uint32,
// next_state, the tempering in operator()) — the reference Mersenne Twister of
// Matsumoto & Nishimura; numpy's RandomState(seed) yields the same raw words.

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  private left = 1;
  private next = 0;

  /** torch seeds with a uint64 but the engine keeps only its low 32 bits. */
  constructor(seed: number | bigint) {
    const st = this.state;
    st[0] = low32(seed);
    for (let j = 1; j < N; j++) {
      const prev = st[j - 1]!;
      st[j] = Math.imul(1812433253, prev ^ (prev >>> 30)) + j;
    }
  }

  /** One 32-bit word, as an unsigned number. */
  nextUint32(): number {
    if (--this.left <= 0) this.regenerate();
    let y = this.state[this.next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private regenerate(): void {
    const st = this.state;
    this.left = N;
    this.next = 0;
    // The reference recurrence, its index wrap-around split into three loops (no modulo on the hot path).
    let k = 0;
    for (; k < N - M; k++) {
      const y = (st[k]! & UPPER_MASK) | (st[k + 1]! & LOWER_MASK);
      st[k] = st[k + M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    for (; k < N - 1; k++) {
      const y = (st[k]! & UPPER_MASK) | (st[k + 1]! & LOWER_MASK);
      st[k] = st[k + M - N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    const y = (st[N - 1]! & UPPER_MASK) | (st[0]! & LOWER_MASK);
    st[N - 1] = st[M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
  }
}

/** The low 32 bits of an integer seed, two's complement for negatives (what uint64 → uint32 keeps). */
export function low32(seed: number | bigint): number {
  if (typeof seed === 'bigint') return Number(BigInt.asUintN(32, seed));
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  return Number(BigInt.asUintN(32, BigInt(seed)));
}
