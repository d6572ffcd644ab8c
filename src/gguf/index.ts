/** GGUF codec: lazy validated reader, ggml-exact (de)quantizers, staged streaming writer. */
export { GgufError, type GgufErrorCode } from './errors.ts';
export { GgufFile, withGguf, origShapeKey } from './reader.ts';
export { DEFAULT_ALIGNMENT, type GgufHeader, type GgufTensorInfo } from './header.ts';
export { GgufWriter, writeGguf, MAX_NAME_BYTES, type GgufTensorEntry, type GgufTensorSpec, type GgufWriterOptions } from './writer.ts';
export { gv, VALUE_TYPES, type GgufValue, type GgufValueType, type GgufScalarType } from './metadata.ts';
export { dequantize, quantize } from './codec.ts';
export { GGML_TYPES, QK, QK_K, SUPPORTED_TYPES, isSupportedType, typeById, typeByName, typeBytes, type GgmlType, type GgmlTypeInfo } from './types.ts';
export { fp16ToFp32, fp32ToFp16 } from './half.ts';
