#!/usr/bin/env node
// Thin launcher for the `cds` command: runs the TypeScript entry through tsx's loader.
import { register } from 'tsx/esm/api';
register();
await import('../src/main.ts');
