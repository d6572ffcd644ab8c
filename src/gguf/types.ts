/**
 * ggml tensor types as GGUF stores them: id, name, elements per block and bytes per block
 * (ggml.c `type_traits`, ggml-common.h block structs). Rows (ne0) are whole blocks.
 */

export interface GgmlTypeInfo {
  id: number;
  name: string;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
  /** Whether this codec can dequantize and quantize it. */
  supported: boolean;
}

export const QK = 32;
export const QK_K = 256;

const T = (id: number, name: string, blockSize: number, typeSize: number, supported = false): GgmlTypeInfo => ({ id, name, blockSize, typeSize, supported });

/** Every type id ggml defines (ids 4, 5, 31–33, 36–38 were removed and are invalid in files). */
export const GGML_TYPES: readonly GgmlTypeInfo[] = [
  T(0, 'F32', 1, 4, true),
  T(1, 'F16', 1, 2, true),
  T(2, 'Q4_0', QK, 18, true),
  T(3, 'Q4_1', QK, 20, true),
  T(6, 'Q5_0', QK, 22, true),
  T(7, 'Q5_1', QK, 24, true),
  T(8, 'Q8_0', QK, 34, true),
  T(9, 'Q8_1', QK, 36),
  T(10, 'Q2_K', QK_K, 84),
  T(11, 'Q3_K', QK_K, 110),
  T(12, 'Q4_K', QK_K, 144, true),
  T(13, 'Q5_K', QK_K, 176, true),
  T(14, 'Q6_K', QK_K, 210, true),
  T(15, 'Q8_K', QK_K, 292),
  T(16, 'IQ2_XXS', QK_K, 66),
  T(17, 'IQ2_XS', QK_K, 74),
  T(18, 'IQ3_XXS', QK_K, 98),
  T(19, 'IQ1_S', QK_K, 50),
  T(20, 'IQ4_NL', QK, 18),
  T(21, 'IQ3_S', QK_K, 110),
  T(22, 'IQ2_S', QK_K, 82),
  T(23, 'IQ4_XS', QK_K, 136),
  T(24, 'I8', 1, 1),
  T(25, 'I16', 1, 2),
  T(26, 'I32', 1, 4),
  T(27, 'I64', 1, 8),
  T(28, 'F64', 1, 8),
  T(29, 'IQ1_M', QK_K, 56),
  T(30, 'BF16', 1, 2, true),
  T(34, 'TQ1_0', QK_K, 54),
  T(35, 'TQ2_0', QK_K, 66),
  T(39, 'MXFP4', QK, 17),
];

/** The types this codec reads and writes. */
export type GgmlType = 'F32' | 'F16' | 'BF16' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q4_K' | 'Q5_K' | 'Q6_K';
export const SUPPORTED_TYPES: readonly GgmlType[] = GGML_TYPES.filter((t) => t.supported).map((t) => t.name as GgmlType);

const byId = new Map(GGML_TYPES.map((t) => [t.id, t]));
const byName = new Map(GGML_TYPES.map((t) => [t.name, t]));

export function typeById(id: number): GgmlTypeInfo | undefined {
  return byId.get(id);
}

export function typeByName(name: string): GgmlTypeInfo | undefined {
  return byName.get(name.toUpperCase());
}

export function isSupportedType(name: string): name is GgmlType {
  return byName.get(name)?.supported === true;
}

/** Bytes of `elements` values of `type` (elements must be whole blocks). */
export function typeBytes(type: GgmlTypeInfo, elements: number): number {
  return (elements / type.blockSize) * type.typeSize;
}
