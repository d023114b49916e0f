"""Sokoban end to end: ROLL trains against environments served by ROCK sandboxes."""
