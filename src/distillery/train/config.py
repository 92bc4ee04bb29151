from ..params import Section


class TrainEvalParams(Section):
    pass


class RemoteParams(Section):
    pass
