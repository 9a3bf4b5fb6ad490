"""Check the lessons: python -m chipviz.lessons [FILE.md ...]"""
from . import main

raise SystemExit(main())
