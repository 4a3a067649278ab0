// PyTorch's CPU random numbers, reproduced: torch.Generator().manual_seed(seed) is an MT19937
// (Matsumoto & Nishimura 1998) seeded with the low 32 bits of the seed. torch.rand (float32) keeps
// the low 24 bits of one 32-bit draw and scales them by 2^-24; torch.randint(high) (high < 2^32)
// takes one 32-bit draw modulo high. Elements are filled in order, one draw each.
// tests/site/test_math.py checks these against torch itself.

const N = 624, M = 397;

export class MT19937 {
  constructor(seed) {
    const s = Number.isSafeInteger(seed) && seed >= 0 ? seed : 0;
    this.mt = new Uint32Array(N);
    this.mt[0] = s % 4294967296;  // seed & 0xffffffff for seeds below 2^53
    for (let j = 1; j < N; j++) {
      const p = this.mt[j - 1] ^ (this.mt[j - 1] >>> 30);
      this.mt[j] = (Math.imul(1812433253, p) + j) >>> 0;
    }
    this.index = N;
  }

  _twist() {
    const mt = this.mt;
    for (let k = 0; k < N; k++) {
      const y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
      mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /** The next 32-bit draw as an unsigned integer (std::mt19937's output). */
  nextU32() {
    if (this.index >= N) this._twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

const TWO_M24 = 1 / 16777216;

/** torch.rand(count, generator=gen): float32 uniforms in [0, 1). */
export function rand(gen, count) {
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) out[k] = (gen.nextU32() & 0xffffff) * TWO_M24;
  return out;
}

/** torch.randint(high, (count,), generator=gen) for 0 < high < 2^32. */
export function randint(gen, high, count) {
  const out = new Int32Array(count);
  for (let k = 0; k < count; k++) out[k] = gen.nextU32() % high;
  return out;
}
