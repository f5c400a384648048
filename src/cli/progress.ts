/** A progress line on standard error, drawn only when it is a terminal (never in logs or pipes). */

/** Draws `done / total` with a rate, at most ten times a second. */
export class Progress {
  private last = 0;
  private readonly started = performance.now();
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = out.isTTY === true;
  }

  /** Updates the line. */
  update(done: number): void {
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.last < 100) return;
    this.last = now;
    const rate = Math.round(done / Math.max(0.001, (now - this.started) / 1000));
    let bar = '';
    if (this.total !== undefined && this.total > 0) {
      const width = 30;
      const filled = Math.round((done / this.total) * width);
      bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor((done / this.total) * 100)}% `;
    }
    this.out.write(
      `\r${this.label} ${bar}${done}${this.total !== undefined ? `/${this.total}` : ''} (${rate}/s)   `,
    );
  }

  /** Ends the line. */
  finish(): void {
    if (this.tty) this.out.write('\n');
  }
}
