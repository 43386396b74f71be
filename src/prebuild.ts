// Which prebuilt addon fits this process: the file `prebuildify --napi
// --tag-libc --name baton` makes for a platform, arch and C library (`npm
// pack` ships linux-x64's, built against glibc). The libc is in the name so
// that a glibc build is never loaded on musl (Alpine), where it cannot work.

export type Libc = 'glibc' | 'musl';

export const PLATFORM_ARCH = `${process.platform}-${process.arch}`;

/** The C library this Node runs on: its report names the glibc it found, and none on musl. */
export function libc(): Libc {
  const { header } = process.report.getReport() as { header: { glibcVersionRuntime?: string } };
  return header.glibcVersionRuntime ? 'glibc' : 'musl';
}

/** The prebuild's file name in prebuilds/<PLATFORM_ARCH>/. */
export const prebuildFile = (c: Libc) => `baton.${c}.node`;
