"""The limits of chipviz.animation that the command line's help quotes, in a module that imports nothing,
so that building the parser (every `chipviz` command) does not load Pillow or the drawing code."""

MAX_GIF_FRAMES = 600
DEFAULT_FPS = 4
MAX_FPS = 50  # GIF delays count hundredths of a second, and browsers slow delays under 20 ms down to 100 ms
