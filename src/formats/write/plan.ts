import type { LazyTensor } from '../../tensor/lazy.ts';

/** What a writer decided to put in the file, before any tensor data is produced. */
export interface OutTensor {
  name: string;
  tensor: LazyTensor;
}

export interface OutPlan {
  tensors: OutTensor[];
  notes: string[];
  /** Modules written. */
  modules: number;
  /** Rank and alpha of every LoRA module written (for ss_network_dim / ss_network_alpha). */
  ranks: number[];
  alphas: number[];
}
