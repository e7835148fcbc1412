"""General MIDI soundfonts rendered with FluidSynth: the GM program tables (NSynth-style
family, realistic pitch range) and a deterministic offline renderer."""

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.common import SR_HZ, require_debian_file, require_module

# name -> (path, Debian package). MuseScore_General is partly built from FluidR3's samples,
# so the two always sit on the same side of a split; TimGM6mb is independent of both.
SOUNDFONTS = {
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "musescore": ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    "timgm6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
}
TRAIN_SOUNDFONTS = ("fluidr3", "musescore")
POLYPHONY = 128  # voice slots (a multiple of 64, see `_silence_all`); pieces stay well under it
TEST_SOUNDFONT = "timgm6mb"

FAMILIES = (
    "keyboard", "mallet", "organ", "guitar", "bass", "string", "brass", "reed", "flute", "synth_lead", "vocal",
)
# Realistic MIDI pitch range per family (lowest, highest), roughly the instruments' written ranges.
FAMILY_RANGE = {
    "keyboard": (33, 96), "mallet": (53, 96), "organ": (36, 88), "guitar": (40, 84), "bass": (28, 60),
    "string": (40, 93), "brass": (40, 82), "reed": (46, 88), "flute": (60, 96), "synth_lead": (36, 90),
    "vocal": (48, 79),
}
# Programs whose instrument range differs a lot from its family's.
PROGRAM_RANGE = {
    40: (55, 96), 41: (48, 84), 42: (36, 76), 43: (28, 60),  # violin, viola, cello, contrabass
    56: (55, 82), 57: (40, 72), 58: (28, 58), 60: (34, 77),  # trumpet, trombone, tuba, horn
    64: (56, 87), 65: (49, 81), 66: (44, 76), 67: (36, 69),  # soprano .. baritone sax
    68: (58, 91), 69: (52, 81), 70: (34, 75), 71: (50, 91),  # oboe, cor anglais, bassoon, clarinet
    72: (74, 102),  # piccolo
}


def _family_table() -> dict[int, str]:
    """GM program -> NSynth-style family; programs with no NSynth counterpart (pads,
    effects, drums, sound effects) are absent."""
    table: dict[int, str] = {}
    spans = [
        (0, 8, "keyboard"), (8, 16, "mallet"), (16, 24, "organ"), (24, 32, "guitar"), (32, 40, "bass"),
        (40, 52, "string"), (52, 55, "vocal"), (56, 64, "brass"), (64, 72, "reed"), (72, 80, "flute"),
        (80, 88, "synth_lead"),
    ]
    for lo, hi, family in spans:
        for p in range(lo, hi):
            table[p] = family
    table.update({104: "guitar", 105: "guitar", 106: "guitar", 107: "guitar", 108: "mallet", 109: "reed",
                  110: "string", 111: "reed", 112: "mallet", 114: "mallet"})
    del table[47]  # timpani: a drum, not an NSynth string
    return table


PROGRAM_FAMILY = _family_table()


def pitch_range(program: int) -> tuple[int, int]:
    """The realistic (lowest, highest) MIDI pitch rendered for `program`."""
    return PROGRAM_RANGE.get(program, FAMILY_RANGE[PROGRAM_FAMILY[program]])


def soundfont_path(name: str) -> Path:
    """Path of soundfont `name`; a missing Debian package is named with its install command."""
    path, package = SOUNDFONTS[name]
    return require_debian_file(path, package)


@dataclass
class Renderer:
    """One FluidSynth instance with every soundfont loaded; chorus and reverb off so the same
    request always gives the same samples."""

    gain: float = 0.6

    def __post_init__(self) -> None:
        require_module("fluidsynth", "pyfluidsynth")
        import fluidsynth  # lazy: needs libfluidsynth3 from Debian

        # Effects must be off before the synth is created: set afterwards, the reverb stays on and
        # its tail leaks from one render into the next (measured).
        effects_off = {"synth.chorus.active": 0, "synth.reverb.active": 0, "synth.polyphony": POLYPHONY}
        self._synth = fluidsynth.Synth(samplerate=float(SR_HZ), gain=self.gain, channels=16, **effects_off)
        self._write_float = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int, ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
        )
        self._ids = {name: self._synth.sfload(str(soundfont_path(name))) for name in SOUNDFONTS}
        self._silence_all()

    def _samples(self, n: int) -> np.ndarray:
        """Pull `n` mono float samples.

        pyfluidsynth's `get_samples` goes through `fluid_synth_write_s16`, which adds dither
        noise whose state carries over between calls, so the same note would render
        differently depending on what came before (and a resumed build would differ from a
        clean one). `fluid_synth_write_float` has no dither.
        """
        if n <= 0:
            return np.zeros(0, np.float32)
        left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
        self._write_float(self._synth.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        return (left + right) / 2

    def _silence_all(self) -> None:
        """Stop every voice and put every voice slot into the same state.

        FluidSynth reuses voice slots, and a voice's first 64-sample block depends on what the
        slot played last (measured: up to 4e-4 difference). Filling every slot with the same
        flush notes before each render makes a render depend only on its own request, so a
        resumed build writes the same bytes as a clean one.
        """
        for channel in range(16):
            self._synth.cc(channel, 120, 0)  # all sound off
        self._samples(64)  # a silenced voice frees its slot only at the next rendered block
        # TimGM6mb's piano plays one voice per note: POLYPHONY distinct notes fill every slot.
        for channel in (14, 15):
            self._synth.program_select(channel, self._ids[TEST_SOUNDFONT], 0, 0)
        for i in range(POLYPHONY):
            self._synth.noteon(14 + i // 64, 20 + i % 64, 100)
        self._samples(256)
        for channel in range(16):
            self._synth.cc(channel, 120, 0)
        self._samples(256)

    def note(self, soundfont: str, program: int, pitch: int, velocity: int = 100,
             hold_s: float = 3.0, dur_s: float = 4.0) -> np.ndarray:
        """Render one note NSynth-style: held `hold_s`, released, total `dur_s`.

        Returns:
            `(dur_s * 16000,)` float32 samples.
        """
        self._synth.program_select(0, self._ids[soundfont], 0, program)
        self._synth.noteon(0, pitch, velocity)
        held = self._samples(int(hold_s * SR_HZ))
        self._synth.noteoff(0, pitch)
        tail = self._samples(int(dur_s * SR_HZ) - len(held))
        self._silence_all()
        return np.concatenate([held, tail]).astype(np.float32)

    def events(self, soundfont: str, programs: list[int], notes: list[tuple[float, float, int, int]],
               dur_s: float) -> np.ndarray:
        """Render note events, part `k` on channel `k` (skipping the drum channel 9).

        Args:
            soundfont: soundfont name.
            programs: GM program per part.
            notes: (onset_s, offset_s, part, midi_pitch), any order.
            dur_s: length of the output.

        Returns:
            `(dur_s * 16000,)` float32 samples.
        """
        channels = [k if k < 9 else k + 1 for k in range(len(programs))]
        for channel, program in zip(channels, programs):
            self._synth.program_select(channel, self._ids[soundfont], 0, program)
        timeline = sorted(
            [(on, 1, channels[part], pitch) for on, off, part, pitch in notes]
            + [(off, 0, channels[part], pitch) for on, off, part, pitch in notes]
        )  # note-offs (0) before note-ons (1) at equal times, so repeated notes re-attack
        out, now = [], 0
        total = int(dur_s * SR_HZ)
        for t_s, is_on, channel, pitch in timeline:
            at = min(int(t_s * SR_HZ), total)
            out.append(self._samples(at - now))
            now = at
            if now >= total:
                break
            if is_on:
                self._synth.noteon(channel, pitch, 90)
            else:
                self._synth.noteoff(channel, pitch)
        out.append(self._samples(total - now))
        self._silence_all()
        return np.concatenate(out).astype(np.float32)


def rms_dbfs(wave: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")
