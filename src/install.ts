// The package's install step asks this first: it exits 0 when the prebuild
// for this process is here and loads (so nothing is compiled), and 1 when the
// addon must be built from source (another arch or libc, or a glibc older
// than the one the prebuild needs).

import { join } from 'node:path';
import { libc, PLATFORM_ARCH, prebuildFile } from './prebuild';

try {
  require(join(__dirname, '..', '..', 'prebuilds', PLATFORM_ARCH, prebuildFile(libc())));
} catch {
  process.exitCode = 1;
}
