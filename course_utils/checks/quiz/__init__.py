"""Recap-question keys, one module per lesson (`lesson_NN.py` holding `QUESTIONS`)."""
