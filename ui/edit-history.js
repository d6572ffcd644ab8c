// Undo and redo for the graph: snapshots of the recipe it shows (nodes, params, links, positions,
// groups), taken after each edit; undo puts the previous one back. Snapshots are the recipe's
// JSON text, so equal states are recognised and nothing is recorded twice.

export class EditHistory {
  /**
   * @param {object} opts
   * @param {() => string} opts.snapshot        the graph's state now
   * @param {(state: string) => void} opts.restore  shows a recorded state
   * @param {number} [opts.limit]
   */
  constructor({ snapshot, restore, limit = 100 }) {
    this.snapshot = snapshot;
    this.restore = restore;
    this.limit = limit;
    this.stack = [];
    this.index = -1;
    this.restoring = false;
  }

  /** Forgets everything: the graph as it is now is the first state (a recipe was loaded, or New). */
  reset() {
    this.stack = [this.snapshot()];
    this.index = 0;
  }

  /** Records the graph's state if it changed since the last record (edits while restoring are not edits). */
  record() {
    if (this.restoring) return;
    const s = this.snapshot();
    if (s === this.stack[this.index]) return;
    this.stack.splice(this.index + 1);
    this.stack.push(s);
    if (this.stack.length > this.limit) this.stack.shift();
    this.index = this.stack.length - 1;
  }

  get canUndo() {
    return this.index > 0 || (this.index === 0 && this.snapshot() !== this.stack[0]);
  }

  get canRedo() {
    return this.index < this.stack.length - 1;
  }

  undo() {
    this.record();
    if (this.index <= 0) return false;
    this.index--;
    this.show();
    return true;
  }

  redo() {
    if (!this.canRedo) return false;
    this.index++;
    this.show();
    return true;
  }

  show() {
    this.restoring = true;
    try {
      this.restore(this.stack[this.index]);
    } finally {
      this.restoring = false;
    }
  }
}
