"""Stand-in for the `trampoline` package (PyPI, patrick-kidger/trampoline),
written here for the two names torchsde's BrownianInterval uses, for machines
where the package cannot be installed. run.py puts this directory last on
PYTHONPATH, so an installed `trampoline` wins.

Contract as torchsde uses it: trampoline(gen) runs a generator-based
recursion without growing the Python stack. A generator may `yield` another
generator (a call: its return value is sent back), `raise TailCall(gen)`
(replace the current frame by gen) or return (its value goes to the caller).
"""


class TailCall(BaseException):
    def __init__(self, call):
        self.call = call


def trampoline(gen):
    stack = [gen]
    value = None
    while stack:
        try:
            callee = stack[-1].send(value)
        except StopIteration as done:
            stack.pop()
            value = done.value
        except TailCall as tail:
            stack[-1] = tail.call
            value = None
        else:
            stack.append(callee)
            value = None
    return value
