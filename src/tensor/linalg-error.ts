/** A bad argument or an impossible request to a linear-algebra routine; the message names which. */
export class LinalgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinalgError';
  }
}
