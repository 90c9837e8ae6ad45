"""The CLI's commands beyond serving: ``convert`` (one file, start to finish, in this process),
``events`` (list, show, replay) and ``sample`` (a test video). ``vid2mp3.cli`` parses the
arguments and calls into these.
"""
