// Decoding 16-bit floats (IEEE binary16 "F16" and bfloat16 "BF16") to float32, bit-exactly:
// every 16-bit value, including subnormals, infinities, NaN payloads and negative zero, maps to the
// float32 with the same value (both formats are subsets of float32).

let f16Table: Uint32Array | undefined;

/** The float32 bit pattern of one binary16 value. */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // inf / NaN (payload kept)
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0; // 112 = 127 - 15
  if (mantissa === 0) return sign >>> 0; // signed zero
  // Subnormal m * 2^-24: normalise so the leading 1 is implicit in float32.
  let shift = 0;
  let m = mantissa;
  while ((m & 0x400) === 0) {
    m <<= 1;
    shift++;
  }
  return (sign | ((113 - shift) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** All 65536 binary16 values as float32 bit patterns, built once (256 KiB): decoding is one lookup. */
function table(): Uint32Array {
  if (f16Table) return f16Table;
  f16Table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  return f16Table;
}

export function decodeF16(src: Uint16Array, dest: Float32Array): void {
  if (dest.length !== src.length) throw new RangeError(`decodeF16: ${src.length} values into ${dest.length}`);
  const t32 = table();
  // Copy bit patterns through a Uint32Array view so NaN payloads survive (a float store may canonicalise).
  const d32 = new Uint32Array(dest.buffer, dest.byteOffset, dest.length);
  for (let i = 0; i < src.length; i++) d32[i] = t32[src[i]!]!;
}

/** bfloat16 is the top half of a float32: shift the bits into place. */
export function decodeBf16(src: Uint16Array, dest: Float32Array): void {
  if (dest.length !== src.length) throw new RangeError(`decodeBf16: ${src.length} values into ${dest.length}`);
  const d32 = new Uint32Array(dest.buffer, dest.byteOffset, dest.length);
  for (let i = 0; i < src.length; i++) d32[i] = src[i]! << 16;
}
