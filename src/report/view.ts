/** One picture of a report: what the CLI writes, the HTML report inlines and the editor shows. */
export type ViewKind = 'strength' | 'merge-error' | 'merge-energy' | 'merge-contributions' | 'apply-change' | 'extract-energy';

export interface View {
  kind: ViewKind;
  title: string;
  /** A standalone SVG document. */
  svg: string;
  /** The numbers drawn (JSON-safe), for the editor's panels and for scripts. */
  data: unknown;
}
