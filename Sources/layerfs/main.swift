import LayerCore
print(Timestamp.now())
