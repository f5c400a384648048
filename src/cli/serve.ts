/** `cds serve`: build the app, listen, print the start line, shut down gracefully on SIGTERM/SIGINT. */
import { buildApp } from '../app.ts';
import type { Config } from '../config/index.ts';
import type { CliIo } from './io.ts';

/** Runs the service until a signal; resolves with the exit code. */
export async function serve(config: Config, io: CliIo): Promise<number> {
  const app = await buildApp(config);
  if (app.generatedAdminKey) {
    io.stderr(
      `cds: first start: generated an admin API key (shown once; also in ${app.generatedAdminKey.file}, mode 0600):\n${app.generatedAdminKey.key}`,
    );
  }
  const addresses = await app.listen();
  io.stdout(JSON.stringify({ event: 'listening', ...addresses, pid: process.pid, epoch: app.ctx.log.epoch }));
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      app.ctx.logger.info({ signal }, 'shutting down');
      app.close().then(
        () => resolve(0),
        (e: unknown) => {
          app.ctx.logger.error({ err: e }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
