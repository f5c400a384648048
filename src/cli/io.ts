/** What the command was given. */
export interface CliIo {
  readonly argv: readonly string[];
  readonly env: Record<string, string | undefined>;
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}
