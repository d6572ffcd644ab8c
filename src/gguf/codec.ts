/**
 * One entry point per direction for every supported type: whole blocks of stored bytes to
 * Float32, and Float32 to stored bytes with ggml's reference quantizers.
 */
import { decodeInto, encodeInto } from '../tensor/dtype.ts';
import { dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from './k-quants.ts';
import {
  dequantizeQ4_0, dequantizeQ4_1, dequantizeQ5_0, dequantizeQ5_1, dequantizeQ8_0,
  quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ5_1, quantizeQ8_0,
} from './legacy-quants.ts';
import { typeByName, typeBytes, type GgmlType, type GgmlTypeInfo } from './types.ts';

type Dequant = (src: Uint8Array, dst: Float32Array) => void;
type Quant = (src: Float32Array, dst: Uint8Array) => void;

const plain = (dtype: 'F32' | 'F16' | 'BF16'): [Dequant, Quant] => [
  (src, dst) => void decodeInto(src, dtype, dst),
  (src, dst) => void encodeInto(src, dtype, dst),
];

const CODECS: Record<GgmlType, [Dequant, Quant]> = {
  F32: plain('F32'),
  F16: plain('F16'),
  BF16: plain('BF16'),
  Q4_0: [dequantizeQ4_0, quantizeQ4_0],
  Q4_1: [dequantizeQ4_1, quantizeQ4_1],
  Q5_0: [dequantizeQ5_0, quantizeQ5_0],
  Q5_1: [dequantizeQ5_1, quantizeQ5_1],
  Q8_0: [dequantizeQ8_0, quantizeQ8_0],
  Q4_K: [dequantizeQ4_K, quantizeQ4_K],
  Q5_K: [dequantizeQ5_K, quantizeQ5_K],
  Q6_K: [dequantizeQ6_K, quantizeQ6_K],
};

function info(type: GgmlType): GgmlTypeInfo {
  const t = typeByName(type);
  if (!t?.supported) throw new RangeError(`GGUF: type ${type} is not supported (supported: ${Object.keys(CODECS).join(', ')})`);
  return t;
}

function checkBlocks(t: GgmlTypeInfo, elements: number, bytes: number, what: string): void {
  if (elements % t.blockSize !== 0) throw new RangeError(`GGUF ${what}: ${elements} values are not whole ${t.name} blocks of ${t.blockSize}`);
  if (bytes !== typeBytes(t, elements)) {
    throw new RangeError(`GGUF ${what}: ${elements} ${t.name} values take ${typeBytes(t, elements)} bytes, got ${bytes}`);
  }
}

/** Stored bytes (whole blocks) to Float32, into `out` when given (it must hold exactly their values). */
export function dequantize(type: GgmlType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const t = info(type);
  const dst = out ?? new Float32Array((bytes.byteLength / t.typeSize) * t.blockSize);
  checkBlocks(t, dst.length, bytes.byteLength, 'dequantize');
  CODECS[type][0](bytes, dst);
  return dst;
}

/** Float32 values (whole blocks) to stored bytes with ggml's reference quantizer for `type`. */
export function quantize(type: GgmlType, values: Float32Array, out?: Uint8Array): Uint8Array {
  const t = info(type);
  if (values.length % t.blockSize !== 0) throw new RangeError(`GGUF quantize: ${values.length} values are not whole ${t.name} blocks of ${t.blockSize}`);
  const dst = out ?? new Uint8Array(typeBytes(t, values.length));
  checkBlocks(t, values.length, dst.byteLength, 'quantize');
  CODECS[type][1](values, dst);
  return dst;
}
