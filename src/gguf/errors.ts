/** Every way a GGUF file (or a request to write one) can be wrong, each with its own code. */
import { LoraflowError } from '../errors.ts';

export type GgufErrorCode =
  | 'NOT_FOUND'
  | 'NOT_A_FILE'
  | 'PERMISSION'
  /** The file ends inside a structure (header, a key, a value, a tensor info, a tensor's data). */
  | 'TRUNCATED'
  | 'BAD_MAGIC'
  /** v1 (32-bit counts), v0, a version from the future, or a big-endian file. */
  | 'BAD_VERSION'
  /** A count (tensors, keys, array items) or a string length larger than the file could hold. */
  | 'BAD_COUNT'
  /** A metadata value type outside the GGUF enum, or an array of arrays. */
  | 'BAD_VALUE_TYPE'
  | 'BAD_STRING'
  | 'BAD_KEY'
  | 'DUPLICATE_KEY'
  | 'DUPLICATE_NAME'
  /** A tensor's ggml type id is outside the known table. */
  | 'BAD_TYPE'
  /** A known ggml type this codec cannot decode or encode (Q2_K, IQ*, Q8_1, …). */
  | 'UNSUPPORTED_TYPE'
  | 'BAD_DIMS'
  /** `general.alignment` is not a power-of-two UINT32, or a tensor offset is not a multiple of it. */
  | 'BAD_ALIGNMENT'
  | 'OVERLAP'
  | 'OUT_OF_BOUNDS'
  | 'NO_SUCH_TENSOR'
  | 'BAD_ROW_RANGE'
  | 'BAD_METADATA'
  | 'WRITE_FAILED';

export class GgufError extends LoraflowError {
  declare readonly code: GgufErrorCode;
  constructor(
    code: GgufErrorCode,
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(code === 'WRITE_FAILED' ? 'failure' : 'input', code, `${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'GgufError';
  }
}
