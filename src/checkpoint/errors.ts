/** Problems with a checkpoint in one of its forms: each names the file (or folder) and, where there is one, the tensor. */
import { LoraflowError } from '../errors.ts';

export type CheckpointErrorCode =
  /** A diffusers index that is not JSON, has no weight_map, or names a shard outside its folder. */
  | 'BAD_INDEX'
  /** The index names a shard that is not there. */
  | 'MISSING_SHARD'
  /** The index and a shard disagree about which tensors the shard holds. */
  | 'INDEX_MISMATCH'
  /** A folder that is not a diffusers model folder (no index, no single weights file). */
  | 'NOT_A_MODEL_FOLDER'
  /** Diffusers tensors that do not assemble into the original weight (a q/k/v part missing, rows that do not add up). */
  | 'BAD_PARTS'
  /** A scaled_fp8 checkpoint whose weights and scales do not go together. */
  | 'BAD_SCALES'
  /** An output form this input cannot be written in (or an option that does not fit it). */
  | 'UNSUPPORTED_FORM'
  | 'NO_SUCH_TENSOR'
  /** A folder output whose destination already exists (folders are never written over). */
  | 'OUTPUT_EXISTS'
  /** The file ends before a tensor it declares (it shrank while open). */
  | 'TRUNCATED'
  | 'WRITE_FAILED';

export class CheckpointError extends LoraflowError {
  declare readonly code: CheckpointErrorCode;
  constructor(
    code: CheckpointErrorCode,
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(code === 'WRITE_FAILED' ? 'failure' : 'input', code, `${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'CheckpointError';
  }
}
