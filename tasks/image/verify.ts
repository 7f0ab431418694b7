// image.verify: a local image (file:// URL) is there and, when a digest is configured, has it.
// A local file is the user's: a mismatch is reported, the file is never deleted.

import { ExitError } from "../../src/errors.js";
import {
  expectedDigest,
  hashProgress,
  imageVerified,
  sha256File,
  writeStamp,
} from "../../src/image/image-host.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.verify. */
export interface VerifyParams {
  path: string;
  stamp: string;
  name: string;
  sha256?: string;
  checksums?: string;
  checksumsKeyring?: string;
  /** Whether image.build could have made it (for the message when it is missing). */
  buildable: boolean;
}

/** Check the local image. */
export const imageVerify = defineTask<VerifyParams>({
  kind: "image.verify",
  title: (p) => `Checking image ${p.path}`,
  async check(ctx, p) {
    const st = await ctx.host.fs.stat(p.path);
    if (st?.isDirectory) return !p.sha256 && !p.checksums;
    return imageVerified(ctx, p);
  },
  async run(ctx, p) {
    const st = await ctx.host.fs.stat(p.path);
    if (!st)
      throw new ExitError(
        p.buildable
          ? `Image ${p.path} does not exist (the build did not make it)`
          : `Image ${p.path} does not exist: set image.url to an image, or add image.build to build it (\`aplspawn image build\`)`,
      );
    if (st.isDirectory)
      throw new ExitError(
        `Image ${p.path} is a directory tree: image.sha256 and image.checksums apply to files only`,
      );
    const expected = await expectedDigest(ctx, p);
    if (!expected) return;
    // One lab hashes it; the others wait and take its stamp (a big image is read once).
    await withImageLock(ctx, p.path, "verifying", async () => {
      if (await imageVerified(ctx, p)) {
        ctx.info(`${p.path} was verified meanwhile (by another lab)`);
        return;
      }
      const hashed = await sha256File(
        ctx,
        p.path,
        hashProgress((l) => ctx.progress(l)),
      );
      if (hashed.sha256 !== expected.sha256)
        throw new ExitError(
          `Checksum mismatch for ${p.path}: expected ${expected.sha256} (${expected.from}), got ${hashed.sha256}`,
        );
      ctx.info(`SHA-256 verified: ${hashed.sha256}`);
      await writeStamp(ctx, p.stamp, p.path, hashed, p.checksums);
    });
  },
});
