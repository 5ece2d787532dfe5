"""Tools that work on the course's notebooks (student copies, grading, release, benchmark).

Nothing here is imported by a lesson; lessons import `course_utils` only.
"""
