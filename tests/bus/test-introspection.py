#!/usr/bin/python3
import sys
print("not written yet")
sys.exit(1)
