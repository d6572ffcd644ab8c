/** Every way a safetensors file can be wrong, each with its own code so callers and tests can tell them apart. */
import { LoraflowError } from '../errors.ts';
export type SafetensorsErrorCode =
  | 'NOT_FOUND'
  | 'NOT_A_FILE'
  | 'PERMISSION'
  | 'EMPTY_FILE'
  | 'HEADER_LENGTH_TRUNCATED'
  | 'HEADER_TOO_LARGE'
  | 'HEADER_PAST_EOF'
  | 'HEADER_NOT_OBJECT'
  | 'HEADER_NOT_UTF8'
  | 'HEADER_NOT_JSON'
  | 'DUPLICATE_NAME'
  | 'BAD_ENTRY'
  | 'UNKNOWN_DTYPE'
  | 'BAD_SHAPE'
  | 'BAD_OFFSETS'
  | 'OFFSET_GAP'
  | 'OFFSET_OVERLAP'
  | 'SIZE_MISMATCH'
  | 'MISALIGNED'
  | 'FILE_TOO_SHORT'
  | 'FILE_TOO_LONG'
  | 'BAD_METADATA'
  | 'NO_SUCH_TENSOR'
  | 'WRITE_FAILED';

/** A file that cannot be read as asked is the user's to fix; a write that failed is a failed run. */
export class SafetensorsError extends LoraflowError {
  declare readonly code: SafetensorsErrorCode;
  constructor(
    code: SafetensorsErrorCode,
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(code === 'WRITE_FAILED' ? 'failure' : 'input', code, `${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'SafetensorsError';
  }
}
