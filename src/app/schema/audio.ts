/** Config section `audio`: Audio decoding and chunking for transcription. */
import { z } from 'zod';
import { bytes } from '../schemaTypes.js';

export const audioSchema = z
  .strictObject({
    chunkSeconds: z
      .number()
      .positive()
      .max(3600)
      .default(30)
      .describe('Length of the chunks handed to the transcriber, in seconds (sample-accurate at 16 kHz; whisper.cpp works on 30 s windows).'),
    overlapSeconds: z
      .number()
      .min(0)
      .default(0)
      .describe('Seconds each chunk repeats from the end of the previous one (context for words cut at a boundary); less than chunkSeconds.'),
    ffmpegPath: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe('ffmpeg binary for formats other than WAV; null: $FFMPEG_PATH, then the binary bundled by @ffmpeg-installer/ffmpeg, then ffmpeg on PATH.'),
    readHighWaterMarkBytes: bytes('Bytes read from an audio file at a time, into one reused buffer; the next read happens only when the next chunk is wanted.')
      .pipe(z.number().int().min(4096, 'at least 4096 bytes').max(16 * 1024 * 1024, 'at most 16MiB: a bigger read buffer only costs memory'))
      .prefault('256KiB'),
    maxFileBytes: bytes('Audio size limit.')
      .nullable()
      .prefault(null)
      .describe('Largest audio file or upload accepted; null: no limit (memory does not grow with the file size anyway).'),
  })
  .superRefine((audio, ctx) => {
    if (Math.round(audio.overlapSeconds * 16000) >= Math.round(audio.chunkSeconds * 16000)) {
      ctx.addIssue({
        code: 'custom',
        path: ['overlapSeconds'],
        message: `${audio.overlapSeconds} s is not less than audio.chunkSeconds (${audio.chunkSeconds} s): consecutive chunks would not advance`,
      });
    }
  })
  .describe('Audio decoding and chunking for transcription.')
  .prefault({});
export type AudioConfig = z.output<typeof audioSchema>;
