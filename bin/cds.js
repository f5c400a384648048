#!/usr/bin/env -S node --max-semi-space-size=64
// The young generation at 64 MiB per semi-space: fewer scavenges on the publish path (ADR 0020).
// Thin launcher for the `cds` command: runs the TypeScript entry through tsx's loader.
import { register } from 'tsx/esm/api';
register();
await import('../src/main.ts');
