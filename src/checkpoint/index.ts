/** Base checkpoints in the forms users hold them: single safetensors files, diffusers folders, GGUF, scaled fp8, all-in-one. */
export { CanonicalView, type CanonicalTensor, type Layout } from './canonical.ts';
export { CheckpointError, type CheckpointErrorCode } from './errors.ts';
export type { CheckpointReader, CheckpointWriter, Container, OutputSpec, StoredTensor } from './form.ts';
export { openCheckpoint } from './open.ts';
export { entryFile } from './diffusers-folder.ts';
export { FORMAT_CHOICES, LAYOUT_CHOICES, planOutput, type FormatChoice, type LayoutChoice, type OutputChoice, type OutputPlan, type OutputTensor, type Piece } from './output-plan.ts';
export { describeForm, type FormDescription } from './describe.ts';
