/** Every way a safetensors file can be wrong, each with its own code so callers and tests can tell them apart. */
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

export class SafetensorsError extends Error {
  constructor(
    readonly code: SafetensorsErrorCode,
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'SafetensorsError';
  }
}
