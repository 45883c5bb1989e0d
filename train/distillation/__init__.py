"""Distilling a trained translator into a compact student: the teacher, its cached outputs, and feature matching."""
