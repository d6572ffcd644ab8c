/** The LoRA operations: what graph nodes and CLI commands call. */
export { checkAborted, type OpContext, type ProgressFn } from './context.ts';
export {
  FLUX_BLOCK_IDS, applyBlockWeights, blockOf, checkBlockWeightSpec, isFluxBlockId, parseBlockWeights, BlockWeightError,
  type BlockWeightReport, type BlockWeightSpec, type BlockWeights,
} from './blocks.ts';
export { filterPatches, FilterError, type FilterOptions, type FilterReport } from './filter.ts';
export { scalePatch, scalePatches, scaleSet, ScaleError, type ScaleOutcome, type ScaleReport } from './scale.ts';
export {
  mergeLoras, MergeError,
  type MergeInput, type MergeMethod, type MergeOptions, type MergeReport, type MergedModule, type RefactoredModule,
} from './merge.ts';
export { applyToBase, ApplyError, type ApplyFileReport, type ApplyOptions, type ApplyReport } from './apply.ts';
export { extractLora, ExtractError, type ExtractOptions, type ExtractReport, type ExtractedModule } from './extract.ts';
export { resizeLora, type ResizeOptions, type ResizeReport, type ResizedModule } from './resize.ts';
export { RankChoiceError, type RankChoice } from './lowrank.ts';
export { AdapterShapeError } from './factors.ts';
