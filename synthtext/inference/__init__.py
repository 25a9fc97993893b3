"""Inference: a photo, speech or text and an emotion in, a talking-face video out.

``infer`` (loading a generator, preparing the face, windowing the speech through the network),
``render`` (the photo's pixels moved by the motion field into frames, pasted back), ``life`` and
``mouth`` (blinks, head motion and the open mouth), ``tts`` (text to speech with emotional prosody),
``markup`` (emotion tags in the text), ``jobs`` (a video job as a user gives it, checked),
``videojobs`` (one job from inputs to mp4, and a batch of them), ``selfcheck`` (the evaluator's read
of a generated video), ``live`` (streaming a video while it is written).
"""
