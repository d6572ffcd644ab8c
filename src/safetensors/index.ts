export { SafetensorsError, type SafetensorsErrorCode } from './errors.ts';
export { MAX_HEADER_BYTES, parseHeader, type ParsedHeader, type TensorInfo } from './header.ts';
export { SafetensorsFile, withSafetensors } from './reader.ts';
export {
  SafetensorsWriter, buildHeader, byteLength, orderTensors, writeSafetensors,
  type TensorEntry, type TensorOrder, type TensorSpec, type WriterOptions,
} from './writer.ts';
export {
  formatSummary, summarizeSafetensors,
  type DTypeTotals, type HeaderFacts, type JsonValue, type SafetensorsSummary, type TensorSummary,
} from './summary.ts';
